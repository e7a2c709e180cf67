include "cast/cast.story"

image market "assets/market.jpg"

scene arrival {
  start  = "assets/first_frame.png"
  prompt = "@mei walks through @market"
}
