project "Second" { }
