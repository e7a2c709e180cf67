project "Elements" {
  aspect = "16:9"
}

image market "assets/market.jpg"

element mei {
  frontal     = "assets/mei.png"
  refs        = ["assets/mei_side.png", "assets/mei_back.png"]
  description = "a young woman in a yellow raincoat"
}

element kai {
  frontal = "assets/kai.png"
}

scene meeting {
  elements = [mei, kai]
  prompt   = "@mei meets @kai under the awnings of @market"
  duration = 8
}
