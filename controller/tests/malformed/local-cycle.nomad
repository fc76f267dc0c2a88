locals {
  a = "${local.b}-x"
  b = "${local.a}-y"
}

job "web" {
  group "web" {
    task "api" {
      driver = "docker"
      config { image = "traefik/whoami:${local.a}" }
    }
  }
}
