project "E207 W206" { }

video street "assets/street.mp4"
image door "assets/door.png"

scene snow {
  edit     = street
  start    = door
  duration = 5
  prompt   = "Make it snow on @street"
}
