project "W233 W234" { aspect = "16:9" }

image door "assets/door.png"
video street "assets/street.mp4"

scene opening {
  start    = door
  prompt   = "@door opens onto the street"
  duration = 5
}

scene traffic {
  video      = street
  keep_sound = true
  prompt     = "Night traffic filmed like @street"
  duration   = 5
}
