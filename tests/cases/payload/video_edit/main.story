project "Edit" {
  quality = "pro"
  aspect  = "16:9"
}

video street "assets/street.mp4"

scene snow {
  edit   = street
  prompt = "Make it a snowy night in @street, keep the camera move"
}
