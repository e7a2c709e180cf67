project "Start and end" {
  quality = "pro"
}

image door "assets/door.png"
image sky  "assets/sky.png"

scene through {
  start    = door
  end      = sky
  prompt   = "The camera pushes through the doorway and rises into the open sky"
  duration = 10
}
