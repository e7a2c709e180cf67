element mei {
  frontal = "mei.png"
  refs = ["mei_side.png",
}
