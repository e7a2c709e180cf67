project "Image to video" {
  aspect = "16:9"
}

image door "assets/door.png"

scene opening {
  start    = door
  prompt   = "@door swings open slowly, warm light spilling out"
  duration = 5
}
