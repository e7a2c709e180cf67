image market "assets/market.mp4"
video alley "assets/alley.png"
image street "assets/street.jpg"
element mei { frontal = "assets/mei.png" }

scene arrival {
  start  = mei
  refs   = ["assets/clip.mov"]
  video  = street
  prompt = "@mei walks"
}

scene lanterns {
  start  = arrival
  end    = alley
  edit   = "assets/still.jpg"
  prompt = "lanterns"
}
