variable "image_tag" {
  type        = string
  description = "the whoami tag to run"
}

job "web" {
  group "web" {
    task "api" {
      driver = "docker"
      config {
        image = "traefik/whoami:${var.image_tag}"
      }
    }
  }
}
