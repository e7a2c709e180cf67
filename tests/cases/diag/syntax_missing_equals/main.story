scene arrival {
  prompt "a night market in the rain"
}
