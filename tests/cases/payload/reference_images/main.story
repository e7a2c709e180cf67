project "References" {
  aspect   = "9:16"
  duration = 7
}

image market  "assets/market.jpg"
image lantern "assets/lantern.png"

scene stall {
  refs   = [market, lantern]
  prompt = "A vendor hangs @lantern over a stall in @market at night"
}
