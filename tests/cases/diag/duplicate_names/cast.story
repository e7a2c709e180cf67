element mei { frontal = "mei.png" }
