job "web" {
  datacenters = ["dc1"]
  group "web" {
    task "api" {
      driver = "docker"
      config {
        image = "traefik/whoami"
      }
    }
