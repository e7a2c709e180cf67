project "Typos" {
  qualty = "pro"
}

element mei {
  frontal = "mei.png"
  ref = ["mei_side.png"]
}

scene arrival {
  promt      = "@mei arrives"
  keep_sond  = true
  duration   = 5
  duration   = 10
  colour     = "red"
}
