project "E204 E205" { aspect = "16:9" }

image door "assets/door.png"

scene long {
  prompt   = "An endless corridor"
  duration = 12
}

scene odd {
  prompt   = "A short corridor"
  duration = 7
}

scene framed {
  start    = door
  prompt   = "The door opens"
  duration = 3
}
