project "W242 W243 W245" { aspect = "16:9" }

scene a {
  prompt   = "first"
  duration = 5
}

scene b {
  prompt   = "second"
  duration = 5
}

scene outtake {
  prompt   = "unused"
  duration = 5
}

cut final = [a, b, a]
cut trailer = []
