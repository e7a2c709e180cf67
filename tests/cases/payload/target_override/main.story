project "Targets" {
  target  = "inference/video-o1@v1"
  quality = "pro"
  aspect  = "16:9"
}

image door "assets/door.png"
video street "assets/street.mp4"

scene old_schema {
  start    = door
  prompt   = "@door opens onto a busy street"
  duration = 5
}

scene new_schema {
  target   = "inference/video-o1"
  video    = street
  keep_sound = true
  prompt   = "Night traffic filmed like @street"
  duration = 5
}
