image poster "assets/poster.webp"
video clip "assets/clip.avi"

scene arrival {
  start  = poster
  prompt = "the poster comes alive"
}

scene remix {
  video  = clip
  refs   = ["assets/notes"]
  prompt = "in the style of @clip"
}
