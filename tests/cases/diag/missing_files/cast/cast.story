element mei {
  frontal = "mei.png"
  refs    = ["../assets/mei_side.png"]
}
