scene arrival {
  prompt = "a night market in the rain"

scene lanterns {
  prompt = "paper lanterns sway in the wind"
}
