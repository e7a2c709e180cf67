scene arrival {
  prompt     = "a night market"
  duration   = "5s"
  watermark  = "yes"
  takes      = 0
  keep_sound = 1
}

scene lanterns {
  prompt   = lanterns
  duration = 5.5
  vars     = 3
}

let camera = wide
