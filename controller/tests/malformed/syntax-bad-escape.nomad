job "web" {
  group "web" {
    task "api" {
      driver = "docker"
      config {
        image = "traefik/whoami"
        args  = ["--path", "C:\qux"]
      }
    }
  }
}
