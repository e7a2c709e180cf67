project "Remote" {
  base_url = "http://api.example.com"
}

image market "http://example.com/market.jpg"
image mei "https://cdn.example.com/mei.png"
video alley "ftp://example.com/alley.mp4"

scene arrival {
  start  = "https://cdn.example.com/clip.mp4"
  refs   = [mei]
  prompt = "@mei walks through @market"
}
