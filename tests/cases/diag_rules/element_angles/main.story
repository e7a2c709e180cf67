project "E220 E231" { aspect = "16:9" }

element mei {
  frontal = "assets/mei.png"
  refs    = ["assets/mei_side.png", "assets/mei_back.png", "assets/kai.png", "assets/sky.png"]
}

element kai {
  frontal = "assets/lantern.png"
  refs    = ["assets/door.png", "assets/market.jpg"]
}

scene pair {
  elements = [mei, kai]
  prompt   = "@mei and @kai shake hands"
  duration = 5
}
