project "Enums" {
  quality = "high"
  aspect  = "4:3"
  backend = "cloud"
}

scene arrival {
  prompt  = "a night market"
  quality = std
  aspect  = "16/9"
  target  = "inference/video-o2"
}
