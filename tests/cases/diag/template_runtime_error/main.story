let palette = { background = "pale blue" }

scene intro {
  prompt = "a title card on a {{ palette.foreground | upper }} background"
}
