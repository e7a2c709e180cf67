image market "market.jpg"
video alley "alley.mp4"
element mei { frontal = "mei.png" }
style noir { quality = "pro" }

scene arrival {
  prompt = "@mai walks through @market, like @image_1"
}

scene rain {
  prompt = "Add rain to @alley, then cut back to @arrival in a @noir mood; mail me@example.com"
}
