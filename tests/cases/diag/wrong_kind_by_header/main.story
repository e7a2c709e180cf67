image poster "assets/poster.png"
video clip "assets/clip.mp4"

scene arrival {
  start  = poster
  video  = clip
  prompt = "the poster comes alive like @clip"
}
