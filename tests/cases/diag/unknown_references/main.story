image market "market.jpg"
element mei { frontal = "mei.png" }

scene arrival {
  prompt = "@mei walks through @market"
}

scene lanterns {
  start    = arival.last_frame
  elements = [mei, bob]
  video    = lanterns_ref
  prompt   = "paper lanterns"
}

cut final = [arrival, lantern, market]
