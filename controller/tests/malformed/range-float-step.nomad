# At 1e16 adding 1 leaves a float unchanged: a stepping loop would never end.
job "web" {
  meta {
    x = jsonencode(range(1e16, 1e16 + 4, 1))
  }
  group "web" {
    count = "many"
    task "api" {
      driver = "docker"
      config { image = "traefik/whoami" }
    }
  }
}
