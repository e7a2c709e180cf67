project "Chain" {
  aspect = "16:9"
}

scene arrival {
  prompt   = "A train pulls into a small station at dusk"
  duration = 5
}

scene platform {
  start    = arrival.last_frame
  prompt   = "Passengers step down onto the platform"
  duration = 5
}

scene echo {
  refs     = [arrival.frame(2.5)]
  video    = platform
  prompt   = "The station at night as in @arrival, framed like @platform"
  duration = 5
}

cut final = [arrival, platform, echo]
