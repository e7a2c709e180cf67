project "E213 E214" { aspect = "16:9" }

image icon   "assets/tiny.png"
image banner "assets/banner.png"

scene poster {
  refs     = [icon, banner]
  prompt   = "@icon on @banner"
  duration = 5
}
