style a : b { quality = "pro" }
style b : a { takes = 2 }

scene arrival { prompt = "a night market" }
scene lanterns : arival { prompt = "lanterns" }
scene rain : arrival { prompt = "rain" }

scene chase {
  use    = a
  video  = arrival
  edit   = arrival
  prompt = "a chase"
}
