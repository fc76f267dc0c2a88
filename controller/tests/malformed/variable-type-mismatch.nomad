variable "replicas" {
  type    = number
  default = "three"
}

job "web" {
  group "web" {
    count = var.replicas
    task "api" {
      driver = "docker"
      config { image = "traefik/whoami" }
    }
  }
}
