locals {
  images = ["traefik/whoami"]
}

job "web" {
  group "web" {
    task "api" {
      driver = "docker"
      config { image = local.images[3] }
    }
  }
}
