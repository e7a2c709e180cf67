project "Typos" { }

sceen arrival {
  prompt = "a night market in the rain"
}
