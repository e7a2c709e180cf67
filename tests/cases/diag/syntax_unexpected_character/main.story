scene arrival {
  prompt = "a night market"
  duration = $5
}
