project "Broken" { quality = "std" }

scene arrival {
  prompt   = "a night market in the rain"
  duration = 5
