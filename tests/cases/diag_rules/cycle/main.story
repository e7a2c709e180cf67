project "E240" { aspect = "16:9" }

scene arrival {
  start    = rain.last_frame
  prompt   = "The train arrives"
  duration = 5
}

scene lanterns {
  start    = arrival.last_frame
  prompt   = "Lanterns are lit"
  duration = 5
}

scene rain {
  start    = lanterns.last_frame
  prompt   = "Rain begins"
  duration = 5
}

scene epilogue {
  start    = rain.last_frame
  prompt   = "Morning after"
  duration = 5
}
