project "Text to video" {
  quality = "pro"
  aspect  = "16:9"
}

scene storm {
  prompt    = "A lighthouse in a winter storm, waves breaking over the rocks"
  duration  = 10
  watermark = true
}
