project "E260 E261 E262 E263 E264 E265" { aspect = "16:9" }

video street "assets/street.mp4"

scene a {
  prompt   = "first"
  duration = 5
}

scene b {
  prompt   = "second"
  duration = 10
}

// An edit lasts as long as the video it edits.
scene rain {
  edit   = street
  prompt = "add rain to @street"
}

cut final = [
  a { in = 1, out = 6 },
  crossfade(0.5),
  b { out = 3 },
  dissolve(1),
  rain { out = 60 },
  crossfade(4.5),
  a { in = 2 },
]

cut broken = [
  crossfade(1),
  a { start = 2, out = 1, in = 3 },
  crossfade(0),
  crossfade(1),
]

cut tight = [a { out = 2 }, crossfade(1.5), b { in = 9 }, crossfade(0.5), a]
