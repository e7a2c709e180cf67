project "E212" { aspect = "16:9" }

scene silent {
  prompt   = "   "
  duration = 5
}
