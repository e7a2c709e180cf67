element mei {
  refs = ["mei_side.png"]
}

scene arrival {
  duration = 5
}

scene lanterns : noir {
}

style noir {
  prompt = "lanterns in the wind"
}
