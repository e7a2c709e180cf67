project "Budget" {
  max_cost = -1
  jobs     = 0
  base_url = "example.com"
  target   = "inference/video-o1@v3"
}

include "more.story"

scene arrival {
  prompt     = "a night market"
  keep_sound = true
}
