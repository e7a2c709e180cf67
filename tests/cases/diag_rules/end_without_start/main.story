project "E201" { aspect = "16:9" }

image sky "assets/sky.png"

scene landing {
  end      = sky
  prompt   = "The plane lands as the clouds part"
  duration = 5
}
