project "W211" { aspect = "16:9" }

image market "assets/market.jpg"
video street "assets/street.mp4"
element mei { frontal = "assets/mei.png" }

scene busy {
  refs     = [market]
  elements = [mei]
  motion   = street
  prompt   = "A busy evening"
  duration = 5
}
