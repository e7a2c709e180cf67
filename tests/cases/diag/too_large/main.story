image poster "assets/poster.png"
video long_take "assets/long_take.mp4"

scene arrival {
  start  = poster
  prompt = "the poster comes alive"
}

scene edit_long {
  edit   = long_take
  prompt = "add rain to @long_take"
}
