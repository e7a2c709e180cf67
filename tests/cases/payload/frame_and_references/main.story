project "Frame and references" {
  aspect = "16:9"
}

image door    "assets/door.png"
image market  "assets/market.jpg"
image lantern "assets/lantern.png"

scene entrance {
  start    = door
  refs     = [market, lantern]
  prompt   = "From @door we walk into @market, where @lantern glows"
  duration = 6
}
