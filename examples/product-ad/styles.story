# A small style library, shared by the product shots in main.story.

style studio_look {
  quality = "pro"
  vars { light = "soft white studio light, glossy reflections" }
}

// Hero shots: the studio look, rendered twice to pick the better take.
style hero : studio_look {
  takes = 2
}
