project "E215 E216 E217" { aspect = "16:9" }

video long   "assets/long.mp4"
video lowres "assets/lowres.mp4"

scene a {
  motion   = long
  prompt   = "moving like @long"
  duration = 5
}

scene b {
  motion   = lowres
  prompt   = "moving like @lowres"
  duration = 5
}
