project "E208 W209" { }

image door "assets/door.png"
image market "assets/market.jpg"

scene wide {
  prompt   = "A wide desert at noon"
  duration = 5
}

scene stall {
  refs     = [market]
  prompt   = "Fruit piled high in @market"
  duration = 4
}

scene framed {
  start    = door
  aspect   = "9:16"
  prompt   = "The door opens"
  duration = 5
}
