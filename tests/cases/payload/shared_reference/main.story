project "Shared" {
  aspect = "16:9"
}

image portrait "assets/mei.png"

element mei {
  frontal = "assets/mei.png"
  refs    = ["assets/mei_side.png"]
}

scene close_up {
  refs     = [portrait]
  elements = [mei]
  prompt   = "@mei turns to the camera, lit like @portrait"
  duration = 3
}
