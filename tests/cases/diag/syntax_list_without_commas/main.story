scene a { prompt = "one" }
scene b { prompt = "two" }
cut final = [a b]
