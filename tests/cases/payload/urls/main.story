project "Remote" {
  aspect = "1:1"
}

image poster "https://example.com/media/poster.png"

scene square {
  start    = "https://example.com/media/first.jpg"
  refs     = [poster]
  prompt   = "The design of @poster comes alive, starting from the first frame"
  duration = 5
}
