image market "market.jpg"

scene arrival { prompt = "a night market" }

scene lanterns {
  start  = arrival
  end    = arrival.middle
  refs   = [arrival.frame, market.last_frame, arrival.last_frame(2), arrival.frame(-1)]
  prompt = "paper lanterns"
}

scene rain {
  video  = arrival.last_frame
  prompt = "rain like in @arrival"
}
